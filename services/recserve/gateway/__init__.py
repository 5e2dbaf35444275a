"""Gateway: the public RecommenderService; fans one request through the three backends."""
