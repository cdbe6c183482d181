"""What every front end reads the same way in a player's line."""

from __future__ import annotations

import re

# Players' asides to each other, not to the story: `((brb))`, `// lag`, `[[rules?]]`, `ooc:`.
OUT_OF_CHARACTER = re.compile(r"^\s*(\(\(|//|\[\[|ooc:)", re.IGNORECASE)
