"""Telegram: the gateway (the only place Telethon lives), our uploader, delivery to chats and status messages."""

from ._delivery import CachedItem as CachedItem
from ._delivery import DeliveryEvent as DeliveryEvent
from ._delivery import FilesSent as FilesSent
from ._delivery import TelegramDelivery as TelegramDelivery
from ._delivery import TelegramPort as TelegramPort
from ._delivery import UploadProgress as UploadProgress
from ._status import StatusBoard as StatusBoard
from ._status import open_status_board as open_status_board
from ._text import Caption as Caption
from ._uploader import PartsInFlight as PartsInFlight
from ._uploader import upload_file as upload_file
from ._uploader import upload_limit as upload_limit
from ._values import Incoming as Incoming
from ._values import Me as Me
from ._values import OutgoingMedia as OutgoingMedia
from ._values import SentMedia as SentMedia
