"""Simulate a programme before it goes live: the real engine on a simulated clock."""

from dk2020flow.simulate.profile import (
    Behaviour,
    BehaviourError,
    default_behaviour,
    load_behaviour,
    parse_behaviour,
)
from dk2020flow.simulate.result import (
    Problem,
    ProblemKind,
    SimulationResult,
    Summary,
    TimelineEntry,
)
from dk2020flow.simulate.runner import describe_event, run_simulation

__all__ = [
    "Behaviour",
    "BehaviourError",
    "Problem",
    "ProblemKind",
    "SimulationResult",
    "Summary",
    "TimelineEntry",
    "default_behaviour",
    "describe_event",
    "load_behaviour",
    "parse_behaviour",
    "run_simulation",
]
