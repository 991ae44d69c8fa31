"""The image viewer: an X-ray with zoom, pan, window/level, invert and an optional heatmap overlay.

One widget for every view that shows an X-ray (single image now, batch later). Mouse and keys,
as in PACS viewers:
- wheel, ``+``/``-``: zoom about the cursor; ``0`` or ``F``: fit to the window; left-drag: pan;
- right-drag: window/level (horizontal = width, vertical = level); ``R``: reset; ``I``: invert.

Window/level and invert change only what is painted: the pixels the model classified are never
touched here. Levels are in the image's display units, 0..1 (0 = black of the decoded image).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QImage, QPainter, QPixmap, QTransform
from PySide6.QtWidgets import QGraphicsPixmapItem, QGraphicsScene, QGraphicsView

ZOOM_STEP = 1.25
MIN_ZOOM, MAX_ZOOM = 0.02, 40.0
MIN_WIDTH = 1.0 / 256  # narrower than one 8-bit grey step is no longer a window
# A full-width drag across the view changes the window width by this much (a full range).
DRAG_GAIN = 1.0
# The window of a freshly shown image: all of it, as the loader produced it.
DEFAULT_LEVELS = (0.5, 1.0)
# The 16-bit quantisation the lookup table works on: no visible banding even for narrow windows.
_LUT_SIZE = 65536


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


def window_lut(center: float, width: float, inverted: bool = False) -> np.ndarray:
    """The uint8 lookup table (65536 entries) for pixels 0..1 quantised to 16 bits.

    Linear window: center - width/2 -> black, center + width/2 -> white; inverted swaps them.
    """
    x = np.linspace(0.0, 1.0, _LUT_SIZE, dtype=np.float32)
    width = max(width, MIN_WIDTH)
    out = np.clip((x - (center - width / 2)) / width, 0.0, 1.0)
    if inverted:
        out = 1.0 - out
    return (out * 255.0 + 0.5).astype(np.uint8)


def quantise(pixels: np.ndarray) -> np.ndarray:
    """Greyscale (H, W) float 0..1 or uint8 0..255 -> uint16 (H, W), 0..65535: what the lookup table indexes."""
    pixels = np.asarray(pixels)
    scale = 65535.0 / 255.0 if pixels.dtype == np.uint8 else 65535.0
    scaled = np.multiply(pixels, np.float32(scale), dtype=np.float32)  # one new array, then in place
    np.clip(scaled, 0, 65535, out=scaled)
    scaled += np.float32(0.5)
    return scaled.astype(np.uint16)


@dataclass
class DisplayBuffers:
    """An image made ready for :meth:`ImageView.set_image` off the GUI thread (plain numpy, no Qt):
    its 16-bit pixels and its grey values at ``levels``, not inverted."""

    quantised: np.ndarray = field(repr=False)  # uint16 (H, W)
    levels: tuple[float, float]
    grey: np.ndarray = field(repr=False)  # uint8 (H, W), window_lut(*levels)[quantised]


def display_buffers(pixels: np.ndarray, levels: tuple[float, float] = DEFAULT_LEVELS) -> DisplayBuffers:
    """The viewer's work for a new image, done where it is called (the inference worker)."""
    quantised = quantise(pixels)
    levels = (float(levels[0]), float(levels[1]))
    return DisplayBuffers(quantised, levels, np.take(window_lut(*levels), quantised))


def _wrapped_pixmap(pixels: np.ndarray, fmt: QImage.Format) -> QPixmap:
    """uint8 (H, W) grey or (H, W, 4) RGBA -> QPixmap through a QImage that wraps ``pixels`` (no
    copy). Qt may keep using the buffer, so the caller keeps ``pixels`` alive and unchanged as long
    as the pixmap is shown (the view holds it in ``_buffers``)."""
    h, w = pixels.shape[:2]
    return QPixmap.fromImage(QImage(pixels.data, w, h, pixels.strides[0], fmt))


class ImageView(QGraphicsView):
    """Shows one image (fitted until the user zooms); an overlay (any size) is stretched on top."""

    levels_changed = Signal(float, float)  # center, width (0..1 display units)
    inverted_changed = Signal(bool)
    zoom_changed = Signal(float)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setRenderHints(QPainter.RenderHint.SmoothPixmapTransform | QPainter.RenderHint.Antialiasing)
        self.setBackgroundBrush(Qt.GlobalColor.black)
        self.setFrameShape(QGraphicsView.Shape.NoFrame)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
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

        self._quantised: np.ndarray | None = None  # uint16 (H, W): pixels 0..1 * 65535
        # The arrays the shown pixmaps were wrapped from, per item: alive while they are shown.
        self._buffers: dict[str, np.ndarray | None] = {}
        self._center, self._width = DEFAULT_LEVELS
        self._default_levels = DEFAULT_LEVELS
        self._inverted = False
        self._fit_mode = True  # follow the window size until the user zooms
        self._level_drag: tuple[QPointF, float, float] | None = None

    # -- image and overlay ----------------------------------------------------------------------
    def has_image(self) -> bool:
        return not self._image.pixmap().isNull()

    def set_image(self, pixels, default_levels: tuple[float, float] = DEFAULT_LEVELS) -> None:
        """Show greyscale pixels (H, W): float 0..1, or uint8 0..255, or :class:`DisplayBuffers`
        (made off the GUI thread). Removes any overlay.

        default_levels: the image's own window (center, width) in 0..1 units, where it starts and
            where Reset (R) returns: the full range, or a DICOM file's window (core.dicom.FileLevels).
        The view fits the image; invert is kept (the reader's preference, not the image's).
        """
        self._default_levels = (float(default_levels[0]), float(default_levels[1]))
        self._center, self._width = self._default_levels
        ready = None
        if isinstance(pixels, DisplayBuffers):
            self._quantised = pixels.quantised
            if pixels.levels == self._default_levels and not self._inverted:
                ready = pixels.grey
        else:
            self._quantised = quantise(pixels)
        self._overlay.setPixmap(QPixmap())
        self._repaint_image(ready)
        self._lung_outline.setPixmap(QPixmap())
        self.scene().setSceneRect(self._image.boundingRect())
        self._fit_mode = True
        self.fit()
        self.levels_changed.emit(self._center, self._width)

    def clear(self) -> None:
        self._quantised = None
        self._image.setPixmap(QPixmap())
        self._overlay.setPixmap(QPixmap())
        self._buffers.clear()

    def set_overlay(self, rgba: np.ndarray | None) -> None:
        """An RGBA uint8 (h, w, 4) overlay of any size stretched over the image, or None to remove it.

        The stretch is the item's transform, applied smoothly when painted: a heatmap-resolution
        overlay costs the GUI thread no full-size scaled copy."""
        if rgba is None:
            self._overlay.setPixmap(QPixmap())
            self._buffers["overlay"] = None
            return
        rgba = self._buffers["overlay"] = np.ascontiguousarray(rgba, dtype=np.uint8)
        pixmap = _wrapped_pixmap(rgba, QImage.Format.Format_RGBA8888)
        image_size = self._image.pixmap().size()
        scale = QTransform()
        if pixmap.size() != image_size and not image_size.isEmpty():
            scale = QTransform.fromScale(image_size.width() / pixmap.width(), image_size.height() / pixmap.height())
        self._overlay.setTransform(scale)
        self._overlay.setPixmap(pixmap)

    def set_lung_outline(self, rgba: np.ndarray | None) -> None:
        """The lung outline, RGBA uint8 (H, W, 4) the size of the image, or None to remove it."""
        if rgba is not None:
            rgba = np.ascontiguousarray(rgba, dtype=np.uint8)
        self._lung_outline.setPixmap(QPixmap() if rgba is None else _wrapped_pixmap(rgba, QImage.Format.Format_RGBA8888))
        self._buffers["outline"] = rgba

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

    def overlay_opacity(self) -> float:
        return self._overlay.opacity()

    def rendered_image(self) -> QImage:
        """The image as shown (window/level, invert, overlay if visible) at the image's own size."""
        rect = self._image.boundingRect()
        out = QImage(int(rect.width()), int(rect.height()), QImage.Format.Format_RGB32)
        out.fill(Qt.GlobalColor.black)
        painter = QPainter(out)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        self.scene().render(painter, QRectF(out.rect()), rect)
        painter.end()
        return out

    # -- window / level / invert ----------------------------------------------------------------
    def levels(self) -> tuple[float, float]:
        """(center, width) of the display window, in 0..1 units of the decoded image."""
        return self._center, self._width

    def set_levels(self, center: float, width: float) -> None:
        center = float(np.clip(center, 0.0, 1.0))
        width = float(np.clip(width, MIN_WIDTH, 2.0))
        if (center, width) == (self._center, self._width):
            return
        self._center, self._width = center, width
        self._repaint_image()
        self.levels_changed.emit(center, width)

    def default_levels(self) -> tuple[float, float]:
        """The window the image started with (see :meth:`set_image`)."""
        return self._default_levels

    def reset_levels(self) -> None:
        self.set_levels(*self._default_levels)

    def auto_levels(self, low_percentile: float = 1.0, high_percentile: float = 99.0) -> None:
        """A window spanning the image's 1st..99th percentile: more contrast, outliers clipped."""
        levels = self.auto_levels_for_image(low_percentile, high_percentile)
        if levels is not None:
            self.set_levels(*levels)

    def auto_levels_for_image(self, low_percentile: float = 1.0,
                              high_percentile: float = 99.0) -> tuple[float, float] | None:
        """The (center, width) :meth:`auto_levels` would set, or None without an image."""
        if self._quantised is None:
            return None
        lo, hi = np.percentile(self._quantised[::4, ::4], [low_percentile, high_percentile]) / 65535.0
        return float((lo + hi) / 2), float(max(hi - lo, MIN_WIDTH))

    def is_inverted(self) -> bool:
        return self._inverted

    def set_inverted(self, inverted: bool) -> None:
        if inverted == self._inverted:
            return
        self._inverted = inverted
        self._repaint_image()
        self.inverted_changed.emit(inverted)

    def displayed_grey(self) -> np.ndarray | None:
        """The uint8 (H, W) grey values currently painted (after window/level and invert)."""
        if self._quantised is None:
            return None
        return np.take(window_lut(self._center, self._width, self._inverted), self._quantised)

    def _repaint_image(self, grey: np.ndarray | None = None) -> None:
        """Paint the current levels; ``grey``: those grey values already looked up (a new image's)."""
        grey = self.displayed_grey() if grey is None else grey
        if grey is not None:
            grey = np.ascontiguousarray(grey, dtype=np.uint8)
            self._image.setPixmap(_wrapped_pixmap(grey, QImage.Format.Format_Grayscale8))
            self._buffers["image"] = grey

    # -- zoom -----------------------------------------------------------------------------------
    def zoom_factor(self) -> float:
        """Screen pixels per image pixel."""
        return self.transform().m11()

    def zoom_by(self, factor: float) -> None:
        if not self.has_image():
            return
        target = float(np.clip(self.zoom_factor() * factor, MIN_ZOOM, MAX_ZOOM))
        factor = target / self.zoom_factor()
        if abs(factor - 1.0) < 1e-6:
            return
        self._fit_mode = False
        self.scale(factor, factor)
        self.zoom_changed.emit(self.zoom_factor())

    def fit(self) -> None:
        """Fit the whole image in the view; it then follows the window's size until the next zoom."""
        if self.has_image():
            self._fit_mode = True
            self.fitInView(self._image, Qt.AspectRatioMode.KeepAspectRatio)
            self.zoom_changed.emit(self.zoom_factor())

    # -- events ---------------------------------------------------------------------------------
    def resizeEvent(self, event):
        super().resizeEvent(event)
        if self._fit_mode:
            self.fit()

    def wheelEvent(self, event):
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.zoom_by(ZOOM_STEP ** steps)
        event.accept()

    def keyPressEvent(self, event):
        key = event.key()
        if key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.zoom_by(ZOOM_STEP)
        elif key == Qt.Key.Key_Minus:
            self.zoom_by(1 / ZOOM_STEP)
        elif key in (Qt.Key.Key_0, Qt.Key.Key_F):
            self.fit()
        elif key == Qt.Key.Key_I:
            self.set_inverted(not self._inverted)
        elif key == Qt.Key.Key_R:
            self.reset_levels()
        else:
            super().keyPressEvent(event)

    def mousePressEvent(self, event):
        if event.button() == Qt.MouseButton.RightButton and self.has_image():
            self._level_drag = (event.position(), self._center, self._width)
            self.viewport().setCursor(Qt.CursorShape.SizeAllCursor)
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event):
        if self._level_drag is not None:
            start, center, width = self._level_drag
            delta = event.position() - start
            size = self.viewport().size()
            # Right = wider (less contrast), down = higher level (darker), as in most PACS viewers.
            new_width = width * (2.0 ** (DRAG_GAIN * 4 * delta.x() / max(size.width(), 1)))
            new_center = center + delta.y() / max(size.height(), 1)
            self.set_levels(new_center, new_width)
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event):
        if self._level_drag is not None and event.button() == Qt.MouseButton.RightButton:
            self._level_drag = None
            self.viewport().unsetCursor()
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def contextMenuEvent(self, event):
        event.accept()  # the right button is window/level here
