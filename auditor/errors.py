"""One exception tree. The CLI turns any AuditorError into a one-line message and a non-zero exit."""


class AuditorError(Exception):
    """An error the user can act on; its message is shown as is."""

    exit_code = 1


class ConfigError(AuditorError):
    """auditor.toml or clouds.yaml is wrong: the message names the file, the key and what was expected."""

    exit_code = 2


class CollectionError(AuditorError):
    """The cloud could not be collected at all (unknown cloud, bad credentials, unreachable)."""

    exit_code = 3


class CollectionCancelled(AuditorError):
    """A cooperative stop (SIGTERM/SIGINT) ended a collection; nothing was written."""

    exit_code = 130


class StoreError(AuditorError):
    """The snapshot database could not be opened, written or read."""

    exit_code = 4


class QueryError(AuditorError):
    """A query given to `auditor sql` was refused or failed."""

    exit_code = 5
