"""The services the deployable consumers run: bus runtimes and readers wired to plain logic."""
