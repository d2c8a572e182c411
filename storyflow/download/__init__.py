"""Downloads: URL safety, gallery-dl / yt-dlp processes, and the engine that runs jobs."""

from ._classify import classify as classify
from ._engine import Delivery as Delivery
from ._engine import DeliveryHandle as DeliveryHandle
from ._engine import Engine as Engine
from ._engine import Fetcher as Fetcher
from ._engine import open_engine as open_engine
from ._engine import safe_display_name as safe_display_name
from ._events import DownloadProgress as DownloadProgress
from ._events import EngineEvent as EngineEvent
from ._events import FileReady as FileReady
from ._events import JobUpdated as JobUpdated
from ._events import Notice as Notice
from ._events import QueueMoved as QueueMoved
from ._tools import Attempt as Attempt
from ._tools import FileLine as FileLine
from ._tools import Route as Route
from ._tools import Tool as Tool
from ._tools import route as route
from ._urls import check_destination as check_destination
from ._urls import validate_url as validate_url
