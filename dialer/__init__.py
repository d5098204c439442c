"""tsunagu's runtime shell: CLI, store, telephony, campaign loop, scheduler and views."""

__version__ = "0.1.0"
