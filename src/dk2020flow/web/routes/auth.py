"""Placeholder: filled in by the auth area's work."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
