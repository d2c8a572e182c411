"""Configuration: TOML file + STORYFLOW_* environment, validated into attrs models."""

from ._config import CommandsConfig as CommandsConfig
from ._config import Config as Config
from ._config import DownloadConfig as DownloadConfig
from ._config import PathsConfig as PathsConfig
from ._config import StoriesConfig as StoriesConfig
from ._config import TelegramConfig as TelegramConfig
from ._config import default_config_path as default_config_path
from ._config import describe_settings as describe_settings
from ._config import load_config as load_config
from ._config import parse_size as parse_size
