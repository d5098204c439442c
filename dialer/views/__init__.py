"""Terminal views: the campaign monitor and the agent console (rich renderables plus a key reader)."""
