//! Image sizes and pixel rectangles, in the pixel coordinates of one stage of a chain.

/// Width and height of an image, in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Size {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl Size {
    /// A new size.
    pub const fn new(width: u32, height: u32) -> Self {
        Self { width, height }
    }

    /// Number of pixels.
    pub fn pixels(self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }

    /// The whole image as a rectangle.
    pub fn rect(self) -> Rect {
        Rect::new(0, 0, self.width, self.height)
    }

    /// Whether the image has no pixels.
    pub fn is_empty(self) -> bool {
        self.width == 0 || self.height == 0
    }
}

/// A rectangle of pixels `[x, x+width) × [y, y+height)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Rect {
    /// Left column.
    pub x: u32,
    /// Top row.
    pub y: u32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl Rect {
    /// A new rectangle.
    pub const fn new(x: u32, y: u32, width: u32, height: u32) -> Self {
        Self {
            x,
            y,
            width,
            height,
        }
    }

    /// The empty rectangle.
    pub const EMPTY: Rect = Rect::new(0, 0, 0, 0);

    /// Whether it holds no pixels.
    pub fn is_empty(self) -> bool {
        self.width == 0 || self.height == 0
    }

    /// Number of pixels.
    pub fn pixels(self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }

    /// One past the right column.
    pub fn right(self) -> u32 {
        self.x + self.width
    }

    /// One past the bottom row.
    pub fn bottom(self) -> u32 {
        self.y + self.height
    }

    /// Grow by `halo_px` on every side, then clip to `bounds`. Empty stays empty.
    pub fn expand_clip(self, halo_px: u32, bounds: Size) -> Rect {
        if self.is_empty() {
            return Rect::EMPTY;
        }
        let x0 = self.x.saturating_sub(halo_px);
        let y0 = self.y.saturating_sub(halo_px);
        let x1 = self.right().saturating_add(halo_px).min(bounds.width);
        let y1 = self.bottom().saturating_add(halo_px).min(bounds.height);
        Rect::from_bounds(x0, y0, x1, y1)
    }

    /// Rectangle from its edges; empty when `x1 <= x0` or `y1 <= y0`.
    pub fn from_bounds(x0: u32, y0: u32, x1: u32, y1: u32) -> Rect {
        if x1 <= x0 || y1 <= y0 {
            Rect::EMPTY
        } else {
            Rect::new(x0, y0, x1 - x0, y1 - y0)
        }
    }

    /// Intersection with another rectangle.
    pub fn intersect(self, other: Rect) -> Rect {
        Rect::from_bounds(
            self.x.max(other.x),
            self.y.max(other.y),
            self.right().min(other.right()),
            self.bottom().min(other.bottom()),
        )
    }

    /// Split `size` into a grid of tiles of at most `tile_px` × `tile_px`, row-major.
    pub fn grid(size: Size, tile_px: u32) -> Vec<Rect> {
        let tile_px = tile_px.max(1);
        let mut tiles = Vec::new();
        let mut y = 0;
        while y < size.height {
            let h = tile_px.min(size.height - y);
            let mut x = 0;
            while x < size.width {
                let w = tile_px.min(size.width - x);
                tiles.push(Rect::new(x, y, w, h));
                x += w;
            }
            y += h;
        }
        tiles
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_covers_image_exactly() {
        let size = Size::new(10, 7);
        let tiles = Rect::grid(size, 3);
        assert_eq!(tiles.len(), 4 * 3);
        assert_eq!(tiles.iter().map(|t| t.pixels()).sum::<u64>(), 70);
        assert_eq!(tiles[3], Rect::new(9, 0, 1, 3));
    }

    #[test]
    fn expand_clip_stays_in_bounds() {
        let r = Rect::new(1, 1, 2, 2).expand_clip(5, Size::new(4, 10));
        assert_eq!(r, Rect::new(0, 0, 4, 8));
        assert!(Rect::EMPTY.expand_clip(3, Size::new(9, 9)).is_empty());
    }
}
