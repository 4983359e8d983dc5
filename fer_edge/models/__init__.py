"""fer_edge.models"""
