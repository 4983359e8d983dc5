"""fer_edge.build"""
