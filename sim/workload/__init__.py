"""What arrives: generated requests, multi-turn conversations and streamed traces."""
