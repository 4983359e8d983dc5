"""fer_edge.recognizer"""
