"""The rule engine: rule files, the environment they run in, evaluation, waivers and history."""
