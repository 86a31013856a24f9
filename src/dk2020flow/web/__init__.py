"""The web application: the secretariat's console (and, on the same app, the
participants' portal and the REST API).

Server-rendered HTML from Jinja2 templates with htmx for progressive enhancement:
every form works without JavaScript. Endpoints are plain ``def`` functions (the
service and the store are synchronous; FastAPI runs them in its thread pool) and
change cases only through ``dk2020flow.service`` — no business rule lives here.

- ``app``: ``create_app`` builds the FastAPI application from a ``WebConfig``;
- ``context``: what every request shares (the service, the clock, the templates);
- ``security``: response headers (CSP …) and the CSRF check every unsafe request passes;
- ``auth``: who is signed in (``Principal``) and the role checks every route declares;
- ``i18n``: Danish and English texts, opening in the programme's language; dates and numbers per language;
- ``rendering``: pages and htmx fragments of pages from the same templates;
- ``routes/``: one module per area of the console; ``messages/`` their texts;
- ``templates/``, ``static/`` (DKFDS and htmx, vendored unchanged).

docs/web.md is the user's reference.
"""
