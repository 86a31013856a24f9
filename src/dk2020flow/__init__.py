"""dk2020flow: a workflow and case-management engine for long guidance programmes."""

__version__ = "0.1.0"
