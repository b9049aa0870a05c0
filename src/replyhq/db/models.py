"""Imports every domain's models so that metadata is complete (for Alembic and tests)."""

from replyhq.accounts import models as accounts_models
from replyhq.analytics import models as analytics_models
from replyhq.apps import models as apps_models
from replyhq.attachments import models as attachments_models
from replyhq.billing import models as billing_models
from replyhq.campaigns import models as campaigns_models
from replyhq.db.base import Base
from replyhq.messaging import models as messaging_models
from replyhq.messenger import models as messenger_models
from replyhq.onboarding import models as onboarding_models
from replyhq.push import models as push_models
from replyhq.reports import models as reports_models
from replyhq.segments import models as segments_models
from replyhq.triggered import models as triggered_models
from replyhq.users import models as users_models
from replyhq.workspace import models as workspace_models

metadata = Base.metadata

__all__ = [
    "accounts_models",
    "analytics_models",
    "apps_models",
    "attachments_models",
    "billing_models",
    "campaigns_models",
    "messaging_models",
    "messenger_models",
    "metadata",
    "onboarding_models",
    "push_models",
    "reports_models",
    "segments_models",
    "triggered_models",
    "users_models",
    "workspace_models",
]
