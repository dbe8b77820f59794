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


class EvaluationCancelled(CollectionCancelled):
    """A cooperative stop (SIGTERM/SIGINT) ended an evaluation; nothing of it was written."""


class StoreError(AuditorError):
    """The snapshot database could not be opened, written or read."""

    exit_code = 4


class QueryError(AuditorError):
    """A query given to `auditor sql` was refused or failed."""

    exit_code = 5


class RuleError(AuditorError):
    """A rule, rule test, framework, waiver or instance-type file is invalid: each problem names file and line."""

    exit_code = 6

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class EvaluationError(AuditorError):
    """An evaluation could not run at all (no such snapshot, nothing to evaluate)."""

    exit_code = 7


class ReportError(AuditorError):
    """A report could not be rendered or written."""

    exit_code = 9


class NotifyError(AuditorError):
    """The digest could not be built or sent."""

    exit_code = 10


class ServiceError(AuditorError):
    """The service cannot start: its job store is in use by another instance, a schedule is invalid, ..."""

    exit_code = 11


class RetentionError(AuditorError):
    """Pruning could not run (no [retention] policy, or the database could not be changed)."""

    exit_code = 12
