"""Who may command StoryFlow: the owner, and the users and chats the owner allowed.

The config's ``allowed_users`` / ``allowed_chats`` are the starting point; ``.allow`` and ``.deny`` in the chat
change it, and what they say is saved (a ``.deny`` of someone in the config overrides the config).
"""

from __future__ import annotations

import enum

import attrs

from ..jobs import JobStore
from ..telegram import Incoming


class Role(enum.Enum):
    NOBODY = 0
    ALLOWED = 1
    OWNER = 2


@attrs.define(eq=False)
class AccessList:
    owner_id: int
    users: dict[int, str] = attrs.field(factory=dict)  # id -> display name
    chats: dict[int, str] = attrs.field(factory=dict)

    @classmethod
    async def load(
        cls, store: JobStore, owner_id: int, *, config_users: tuple[int, ...], config_chats: tuple[int, ...]
    ) -> AccessList:
        access = cls(owner_id, dict.fromkeys(config_users, ""), dict.fromkeys(config_chats, ""))
        for kind, entity_id, allowed, name in await store.access_rules():
            table = access.users if kind == "user" else access.chats
            if allowed:
                table[entity_id] = name
            else:
                table.pop(entity_id, None)
        return access

    def role(self, message: Incoming) -> Role:
        # A forwarded command or one sent through an inline bot is somebody else's words.
        if message.forwarded or message.via_bot:
            return Role.NOBODY
        if message.outgoing:
            return Role.OWNER
        if message.sender_id is None:
            return Role.NOBODY  # anonymous channel posts
        if message.sender_id == self.owner_id:
            return Role.OWNER
        if message.sender_id in self.users or message.chat_id in self.chats:
            return Role.ALLOWED
        return Role.NOBODY

    async def allow(self, store: JobStore, kind: str, entity_id: int, name: str) -> None:
        (self.users if kind == "user" else self.chats)[entity_id] = name
        await store.set_access(kind, entity_id, allowed=True, name=name)

    async def deny(self, store: JobStore, kind: str, entity_id: int) -> bool:
        """Remove from the list; False if it was not on it."""
        table = self.users if kind == "user" else self.chats
        was = entity_id in table
        table.pop(entity_id, None)
        await store.set_access(kind, entity_id, allowed=False)
        return was
