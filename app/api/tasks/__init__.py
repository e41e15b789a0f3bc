"""Typed task endpoints (issue 4): images, sentiment, spam, sales forecast, churn, movies.

Each module holds one resource's schemas and route; they share model lookup by task, limits and
reply shapes (``common.py``) and the tabular/text helpers.
"""

from app.api.tasks import churn, images, movies, sales, sentiment, spam

routers = [module.router for module in (images, sentiment, spam, sales, churn, movies)]
