"""Stories read straight from a site's public pages, without a download tool: Snapchat public stories."""

from ._snapchat import DEFAULT_BASE_URL as DEFAULT_BASE_URL
from ._snapchat import MAX_PAGE_BYTES as MAX_PAGE_BYTES
from ._snapchat import BadSnapchatUsername as BadSnapchatUsername
from ._snapchat import Snap as Snap
from ._snapchat import SnapchatLayoutChanged as SnapchatLayoutChanged
from ._snapchat import SnapchatStory as SnapchatStory
from ._snapchat import check_snapchat_username as check_snapchat_username
from ._snapchat import fetch_snapchat_stories as fetch_snapchat_stories
from ._snapchat import parse_story_page as parse_story_page
