"""HTTP routers: protocol APIs (TF Serving v1, KServe v2), service endpoints, task endpoints."""
