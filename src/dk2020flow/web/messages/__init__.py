"""The web application's texts, one module per area (``web/i18n.py``)."""
