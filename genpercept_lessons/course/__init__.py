"""Course tooling: the lessons' text sources, the rendered course, the build-to-build spread. Not lesson material."""
