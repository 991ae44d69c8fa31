"""The image viewer: an X-ray scaled to fit, with an optional heatmap overlay."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPainter, QPixmap
from PySide6.QtWidgets import QGraphicsPixmapItem, QGraphicsScene, QGraphicsView


def grey_to_qimage(grey: np.ndarray) -> QImage:
    """uint8 (H, W) -> an owned QImage (Grayscale8)."""
    grey = np.ascontiguousarray(grey, dtype=np.uint8)
    h, w = grey.shape
    return QImage(grey.data, w, h, w, QImage.Format.Format_Grayscale8).copy()


def rgba_to_qimage(rgba: np.ndarray) -> QImage:
    """uint8 (H, W, 4) -> an owned QImage (RGBA8888)."""
    rgba = np.ascontiguousarray(rgba, dtype=np.uint8)
    h, w, _ = rgba.shape
    return QImage(rgba.data, w, h, 4 * w, QImage.Format.Format_RGBA8888).copy()


class ImageView(QGraphicsView):
    """Shows one image fitted to the widget; an overlay (same size) can be shown on top."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setRenderHints(QPainter.RenderHint.SmoothPixmapTransform | QPainter.RenderHint.Antialiasing)
        self.setBackgroundBrush(Qt.GlobalColor.black)
        self.setFrameShape(QGraphicsView.Shape.NoFrame)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._image = QGraphicsPixmapItem()
        self._image.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self._overlay = QGraphicsPixmapItem(self._image)
        self._overlay.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self._overlay.setVisible(False)
        # The lung outline sits above the heatmap, with its own toggle (no opacity: a thin line).
        self._lung_outline = QGraphicsPixmapItem(self._image)
        self._lung_outline.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self._lung_outline.setZValue(1)
        self._lung_outline.setVisible(False)
        self.scene().addItem(self._image)
        # Drops belong to the main window, not to the view.
        self.setAcceptDrops(False)

    def has_image(self) -> bool:
        return not self._image.pixmap().isNull()

    def set_image(self, grey: np.ndarray) -> None:
        """Show uint8 greyscale pixels (H, W); removes any overlay."""
        self._image.setPixmap(QPixmap.fromImage(grey_to_qimage(grey)))
        self._overlay.setPixmap(QPixmap())
        self._lung_outline.setPixmap(QPixmap())
        self.scene().setSceneRect(self._image.boundingRect())
        self.fit()

    def clear(self) -> None:
        self._image.setPixmap(QPixmap())
        self._overlay.setPixmap(QPixmap())

    def set_overlay(self, rgba: np.ndarray | None) -> None:
        """An RGBA uint8 (H, W, 4) overlay stretched over the image, or None to remove it."""
        if rgba is None:
            self._overlay.setPixmap(QPixmap())
            return
        pixmap = QPixmap.fromImage(rgba_to_qimage(rgba))
        image_size = self._image.pixmap().size()
        if pixmap.size() != image_size and not image_size.isEmpty():
            pixmap = pixmap.scaled(image_size, Qt.AspectRatioMode.IgnoreAspectRatio,
                                   Qt.TransformationMode.SmoothTransformation)
        self._overlay.setPixmap(pixmap)

    def set_lung_outline(self, rgba: np.ndarray | None) -> None:
        """The lung outline, RGBA uint8 (H, W, 4) the size of the image, or None to remove it."""
        self._lung_outline.setPixmap(QPixmap() if rgba is None else QPixmap.fromImage(rgba_to_qimage(rgba)))

    def set_lung_outline_visible(self, visible: bool) -> None:
        self._lung_outline.setVisible(visible)

    def lung_outline_visible(self) -> bool:
        return self._lung_outline.isVisible() and not self._lung_outline.pixmap().isNull()

    def set_overlay_visible(self, visible: bool) -> None:
        self._overlay.setVisible(visible)

    def overlay_visible(self) -> bool:
        return self._overlay.isVisible() and not self._overlay.pixmap().isNull()

    def set_overlay_opacity(self, opacity: float) -> None:
        """0.0 (invisible) .. 1.0 (opaque)."""
        self._overlay.setOpacity(opacity)

    def fit(self) -> None:
        if self.has_image():
            self.fitInView(self._image, Qt.AspectRatioMode.KeepAspectRatio)

    def resizeEvent(self, event):
        super().resizeEvent(event)
        self.fit()
