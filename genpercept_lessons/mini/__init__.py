"""The mini world: procedural MiniScenes and the mini-Marigold models trained from them on the learner's machine."""
