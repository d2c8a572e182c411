"""Jobs: the request, the state machine, the files, and their SQLite store."""

from ._models import FileState as FileState
from ._models import InvalidTransition as InvalidTransition
from ._models import Job as Job
from ._models import JobFile as JobFile
from ._models import JobOptions as JobOptions
from ._models import JobRequest as JobRequest
from ._models import JobState as JobState
from ._models import MediaKind as MediaKind
from ._models import Origin as Origin
from ._models import StoryLabel as StoryLabel
from ._models import kind_for_name as kind_for_name
from ._store import JobStore as JobStore
from ._store import Watch as Watch
from ._store import open_store as open_store
