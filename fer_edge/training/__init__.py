"""fer_edge.training"""
