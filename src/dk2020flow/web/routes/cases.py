"""Placeholder: filled in by the cases area's work."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
