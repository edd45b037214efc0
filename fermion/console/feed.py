"""The console's live feed: what each write transaction emitted, after it committed, to the event streams open
in this server process (GET /ui/events). A project hears of its own resources only, an admin of everything."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

from fermion.rpc.contracts import Hint
from fermion.services.changes import Changed

LOG = logging.getLogger(__name__)
WATCH_INTERVAL = 1.0  # seconds between looks at the agents' liveness, while an admin listens


class Subscriber:
    """One open event stream: the changes it may hear, queued on its event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, project_id: str | None, admin: bool) -> None:
        self.loop = loop
        self.project_id = project_id
        self.admin = admin
        self.queue: asyncio.Queue[list[Changed] | None] = asyncio.Queue()

    def wants(self, change: Changed) -> bool:
        return self.admin or (change.project_id is not None and change.project_id == self.project_id)

    def offer(self, changes: list[Changed]) -> None:
        """From any thread."""
        mine = [c for c in changes if self.wants(c)]
        if mine:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, mine)

    def end(self) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, None)


class ChangeFeed:
    """Called after each commit with the transaction's events (Database.on_commit, beside the RPC notifier).
    `liveness` answers {agent id: alive} (a database read): agents die by falling silent, which no transaction
    says, so while an admin listens the feed looks every second and tells of each agent that died or came
    back."""

    def __init__(self, liveness: Callable[[], dict[str, bool]] | None = None) -> None:
        self.liveness = liveness
        self._subscribers: set[Subscriber] = set()
        self._lock = threading.Lock()
        self._watch: asyncio.Task[None] | None = None
        self.closed = False

    def __call__(self, events: list[Any]) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        if not subscribers:
            return
        changes: dict[tuple[str, str], Changed] = {}
        for event in events:
            if isinstance(event, Changed):
                changes[(event.kind, event.id)] = event
            elif isinstance(event, Hint):  # what the agents hear, for admins (a hint names no project)
                changes.setdefault((event.kind, event.id), Changed(event.kind, event.id))
        if changes:
            batch = list(changes.values())
            for sub in subscribers:
                sub.offer(batch)

    def subscribe(self, project_id: str | None, admin: bool) -> Subscriber:
        """On the event loop that serves the stream."""
        loop = asyncio.get_running_loop()
        sub = Subscriber(loop, project_id, admin)
        with self._lock:
            self._subscribers.add(sub)
        if admin and self.liveness is not None and (self._watch is None or self._watch.done()):
            self._watch = loop.create_task(self._watch_agents())
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        with self._lock:
            self._subscribers.discard(sub)

    def close(self) -> None:
        """The server is stopping: end every stream."""
        self.closed = True
        with self._lock:
            subscribers = list(self._subscribers)
        for sub in subscribers:
            sub.end()

    def _admins(self) -> list[Subscriber]:
        with self._lock:
            return [s for s in self._subscribers if s.admin]

    async def _watch_agents(self) -> None:
        assert self.liveness is not None
        loop = asyncio.get_running_loop()
        known: dict[str, bool] | None = None
        while self._admins() and not self.closed:
            try:
                now = await loop.run_in_executor(None, self.liveness)
            except Exception:  # noqa: BLE001 - a failed look (database restarting) is retried next second
                LOG.warning("the console feed could not read the agents' liveness", exc_info=True)
                now = known or {}
            if known is not None:
                flipped = [Changed("agent", ident) for ident, alive in now.items() if known.get(ident) != alive]
                flipped += [Changed("agent", ident) for ident in known if ident not in now]
                if flipped:
                    for sub in self._admins():
                        sub.offer(flipped)
            known = now
            await asyncio.sleep(WATCH_INTERVAL)
