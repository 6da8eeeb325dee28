"""The management API's views, one module per resource."""

from .environments import EnvironmentViewSet
from .flags import FlagViewSet
from .history import HistoryView
from .sdk_keys import SdkKeyViewSet
from .segments import SegmentViewSet
from .states import FlagStateViewSet

__all__ = [
    "EnvironmentViewSet",
    "FlagStateViewSet",
    "FlagViewSet",
    "HistoryView",
    "SdkKeyViewSet",
    "SegmentViewSet",
]
