"""Media attributes for uploads: what a file is (probe), its thumbnail, and parts under a size limit.

Pure Trio. Everything runs ffmpeg (``storyflow._ffmpeg.ffmpeg_executable``) as a child in its own session,
never through a shell, and kills it when the caller's cancel scope does; blocking file work goes to a
worker thread. No function takes a timeout: callers wrap calls in ``trio.fail_after``. With no ffmpeg at
all, every function raises ``storyflow._ffmpeg.FfmpegMissing``; a file that is not what was asked for
gives None (probes, thumbnails) or SplitError, never a crash.
"""

from ._probe import AudioInfo as AudioInfo
from ._probe import ImageInfo as ImageInfo
from ._probe import VideoInfo as VideoInfo
from ._probe import probe_audio as probe_audio
from ._probe import probe_image as probe_image
from ._probe import probe_video as probe_video
from ._split import SplitError as SplitError
from ._split import split_file as split_file
from ._split import split_video as split_video
from ._thumbnail import THUMBNAIL_MAX_BYTES as THUMBNAIL_MAX_BYTES
from ._thumbnail import THUMBNAIL_MAX_SIDE as THUMBNAIL_MAX_SIDE
from ._thumbnail import make_thumbnail as make_thumbnail
