"""OpenCV (opencv-python-headless) for the host path's pixel kernels, imported in one place with
its own thread pool off: the run's writer threads already share the cores with the engine, and a
second pool per call would compete with both."""

import cv2

cv2.setNumThreads(1)

__all__ = ["cv2"]
