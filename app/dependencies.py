"""Typed dependencies for what the app holds once: its settings and its clock.

create_app() puts them on the app's state; routes take them as `SettingsDep` and `ClockDep`
(tests replace the clock there, or override these dependencies), and code that has only the
request asks settings_of() and now_of().
"""

from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request

from app.clock import Clock
from app.config import Settings


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def clock_of(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


def now_of(request: Request) -> datetime:
    """The app clock's time now (aware UTC, whole seconds)."""
    return clock_of(request)()


# As dependencies they are coroutines: FastAPI would run a plain function in a worker thread,
# a thread hop per request for an attribute look-up (it cost the card view a third of its speed).
async def _settings(request: Request) -> Settings:
    return settings_of(request)


async def _clock(request: Request) -> Clock:
    return clock_of(request)


SettingsDep = Annotated[Settings, Depends(_settings)]
ClockDep = Annotated[Clock, Depends(_clock)]
