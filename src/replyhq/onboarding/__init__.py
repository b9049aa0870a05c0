"""Onboarding: self-service sign-up, the platform survey, the checklist that real events complete,
and the live SDK test console."""
