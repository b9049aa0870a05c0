from replyhq.db.base import Base
from replyhq.db.session import Database, on_commit

__all__ = ["Base", "Database", "on_commit"]
