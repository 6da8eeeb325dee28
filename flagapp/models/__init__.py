"""flagapp's models, one module per area, all importable from ``flagapp.models``."""

from .api_tokens import *  # noqa: F403
from .events import *  # noqa: F403
from .flags import *  # noqa: F403
from .governance import *  # noqa: F403
from .notifications import *  # noqa: F403
from .rollouts import *  # noqa: F403
from .sdk import *  # noqa: F403
from .snapshots import *  # noqa: F403
