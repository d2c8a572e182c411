"""The userbot: chat commands, who may use them, status texts, and `storyflow run`."""

from ._access import AccessList as AccessList
from ._access import Role as Role
from ._commands import Userbot as Userbot
from ._parse import Command as Command
from ._parse import UsageError as UsageError
from ._parse import parse_command as parse_command
from ._parse import parse_download as parse_download
from ._run import Running as Running
from ._run import read_session as read_session
from ._run import run_userbot as run_userbot
from ._run import session_path as session_path
from ._run import write_session as write_session
