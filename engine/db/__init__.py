"""Persistence: typed models, the session factory and migrations."""

from engine.db.database import Database, create_engine
from engine.db.models import Base

__all__ = ["Base", "Database", "create_engine"]
