"""The one kind of error a user can put right themselves.

Raised where the problem is found (missing data, no run yet, a corrupt metadata
file, a busy output directory); the CLI prints its message as one line that says
what is wrong and what to do, and exits with status 1. Anything else is a bug and
keeps its traceback.
"""


class UserError(Exception):
  """A problem with the user's input or files, with a message that says what to do."""
