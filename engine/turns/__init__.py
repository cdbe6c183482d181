"""The turn pipeline: context, scene call, director call, apply."""
