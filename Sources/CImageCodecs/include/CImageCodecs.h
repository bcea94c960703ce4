// Debian's libjpeg-turbo, libpng and libwebp, exposed to Swift.
// The shims exist only because libjpeg and libpng report errors with longjmp, which must not cross Swift frames:
// every call that can fail returns 0 on success and -1 on error, with the library's message kept in the handle.
#pragma once
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <jpeglib.h>
#include <jerror.h>
#include <png.h>
#include <webp/decode.h>

// MARK: JPEG

/// A libjpeg decompressor reading from memory.
typedef struct cic_jpeg cic_jpeg;

/// Creates a decompressor over `data[0..<size]` (not copied; keep it alive). NULL when out of memory.
cic_jpeg *cic_jpeg_create(const unsigned char *data, size_t size);
void cic_jpeg_destroy(cic_jpeg *jpeg);
/// Reads the header: image size, component count and the colour space libjpeg inferred.
int cic_jpeg_read_header(cic_jpeg *jpeg, int *width, int *height, int *components, int *color_space);
/// Starts decompression to `out_color_space` with libjpeg's defaults (ISLOW DCT, fancy upsampling).
int cic_jpeg_start(cic_jpeg *jpeg, int out_color_space, int *output_components);
/// Restricts output to columns [*x, *x + *width); libjpeg widens the span to iMCU boundaries and updates both.
int cic_jpeg_crop(cic_jpeg *jpeg, int *x, int *width);
/// Skips the next `rows` scanlines (libjpeg still reads their data, so a short file is still noticed).
int cic_jpeg_skip_scanlines(cic_jpeg *jpeg, int rows);
/// Decodes the next `rows` scanlines into `dst`, `stride` bytes apart.
int cic_jpeg_read_scanlines(cic_jpeg *jpeg, unsigned char *dst, size_t stride, int rows);
/// The code of the first warning libjpeg emitted (J_MESSAGE_CODE), or -1 when none.
int cic_jpeg_first_warning(const cic_jpeg *jpeg);
/// Whether libjpeg ran out of data and inserted a fake end of image (JWRN_JPEG_EOF).
int cic_jpeg_hit_eof(const cic_jpeg *jpeg);
/// The last error or warning message.
const char *cic_jpeg_message(const cic_jpeg *jpeg);

// MARK: PNG

/// A libpng reader over memory.
typedef struct cic_png cic_png;

cic_png *cic_png_create(const unsigned char *data, size_t size);
void cic_png_destroy(cic_png *png);
/// Reads the chunks before the image data.
int cic_png_read_info(cic_png *png, uint32_t *width, uint32_t *height, int *bit_depth, int *color_type, int *interlace);
/// The PLTE entries (RGB triples); `count` is 0 when there is none.
int cic_png_palette(cic_png *png, const unsigned char **rgb, int *count);
/// The tRNS chunk: for palettes, `alpha[count]`; otherwise one gray or RGB colour. Returns 0 when absent.
int cic_png_transparency(cic_png *png, const unsigned char **alpha, int *count, uint16_t *gray, uint16_t *red, uint16_t *green, uint16_t *blue);
/// Decodes all rows (deinterlacing; depths below 8 unpacked to one byte per sample, 16-bit left big-endian).
int cic_png_read_image(cic_png *png, unsigned char *dst, size_t stride);
const char *cic_png_message(const cic_png *png);
