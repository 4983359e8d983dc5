"""fer_edge.builder"""
