"""fer_edge.engines"""
