"""The data engine: project store, interactive and automatic annotation stages."""
