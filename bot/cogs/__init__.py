"""Discord cogs, loaded as extensions in the bot's setup_hook."""
