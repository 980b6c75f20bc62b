"""SMS as a channel (issue #19): encoding and parts, the provider client, the channel."""
