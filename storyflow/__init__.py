"""StoryFlow: a personal Telegram userbot that saves stories, posts, reels and videos.

The whole public API is re-exported here; the modules behind it are private.
"""

from ._errors import ChatUnavailable as ChatUnavailable
from ._errors import ConfigError as ConfigError
from ._errors import DiskFull as DiskFull
from ._errors import DownloadError as DownloadError
from ._errors import DownloadTimeout as DownloadTimeout
from ._errors import DuplicateSend as DuplicateSend
from ._errors import FloodWait as FloodWait
from ._errors import InputError as InputError
from ._errors import JobRefused as JobRefused
from ._errors import LoginRequired as LoginRequired
from ._errors import MediaRejected as MediaRejected
from ._errors import MessageGone as MessageGone
from ._errors import NetworkError as NetworkError
from ._errors import NoMedia as NoMedia
from ._errors import NotAuthorized as NotAuthorized
from ._errors import NotFound as NotFound
from ._errors import NotModified as NotModified
from ._errors import OwnerLimitReached as OwnerLimitReached
from ._errors import PeerNotFound as PeerNotFound
from ._errors import PrivateAddress as PrivateAddress
from ._errors import PrivateDestination as PrivateDestination
from ._errors import RateLimited as RateLimited
from ._errors import ReferenceExpired as ReferenceExpired
from ._errors import StoryFlowError as StoryFlowError
from ._errors import TelegramError as TelegramError
from ._errors import TelegramUnavailable as TelegramUnavailable
from ._errors import TooLarge as TooLarge
from ._errors import ToolCrashed as ToolCrashed
from ._errors import UnknownJob as UnknownJob
from ._errors import UnsafeURL as UnsafeURL
from ._errors import UnsupportedURL as UnsupportedURL
from ._version import __version__ as __version__
from .bot import run_userbot as run_userbot
from .config import Config as Config
from .config import load_config as load_config
from .download import Delivery as Delivery
from .download import DeliveryHandle as DeliveryHandle
from .download import Engine as Engine
from .download import EngineEvent as EngineEvent
from .download import open_engine as open_engine
from .jobs import Job as Job
from .jobs import JobFile as JobFile
from .jobs import JobOptions as JobOptions
from .jobs import JobRequest as JobRequest
from .jobs import JobState as JobState
from .jobs import JobStore as JobStore
from .jobs import open_store as open_store
