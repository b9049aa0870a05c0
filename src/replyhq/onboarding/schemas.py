from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from replyhq.accounts.schemas import Email, Name, NewPassword, TokenPairOut

Platform = Literal["ios", "android", "react-native", "flutter", "web", "python"]
UseCase = Literal["support", "sales", "onboarding", "notifications", "community", "other"]
StepKey = Literal[
    "sdk_installed", "first_message", "identity_verified", "teammate_invited", "first_reply"
]


class SignupIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: Email
    password: NewPassword
    name: Name
    app_name: Name = Field(description="The name of your app, as your team and end users see it.")


class SignupAppOut(BaseModel):
    id: uuid.UUID
    name: str
    sdk_key: str = Field(description="Shown once, like POST /setup/apps: copy it now.")
    secret_key: str = Field(description="Shown once. Never ship it in an app.")
    identity_secret: str = Field(description="Shown once; signs user_hash on your server.")


class SignupOut(TokenPairOut):
    app: SignupAppOut


class VerifyEmailIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=1, max_length=200, description="From the e-mailed link.")


class VerifiedOut(BaseModel):
    email: str
    email_verified_at: datetime


class SurveyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    platform: Platform | None = Field(None, description="Which quickstart comes first.")
    use_case: UseCase | None = None
    skipped: bool = Field(False, description="true: skip the survey (answer it later).")


class SurveyOut(BaseModel):
    platform: Platform | None
    use_case: UseCase | None
    answered_at: datetime | None
    skipped_at: datetime | None


class StepOut(BaseModel):
    key: StepKey
    done: bool
    done_at: datetime | None


class OnboardingOut(BaseModel):
    survey: SurveyOut
    steps: list[StepOut]
    complete: bool = Field(description="Every step done.")
    dismissed_at: datetime | None = Field(
        description="When the team hid the checklist (possible once complete)."
    )


class QuickstartStepOut(BaseModel):
    title: str
    language: str = Field(description="For highlighting: html, python, sh, swift, kotlin, ...")
    code: str = Field(
        description="Filled in with the app id and server; `YOUR_SDK_KEY` stands "
        "for the SDK key, which the server does not know (stored hashed)."
    )
    waits_for: StepKey | None = Field(description="The checklist step this one completes.")


class QuickstartOut(BaseModel):
    platform: str
    title: str
    executed: bool = Field(description="Run verbatim by ReplyHQ's test suite.")
    docs: str
    steps: list[QuickstartStepOut]
