"""Placeholder: filled in by the case area's work."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
