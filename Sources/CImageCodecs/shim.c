// setjmp/longjmp error handling for libjpeg and libpng; everything else is done in Swift.
#include "CImageCodecs.h"
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

// MARK: JPEG

struct cic_jpeg {
    struct jpeg_decompress_struct cinfo;
    struct jpeg_error_mgr err;
    jmp_buf jump;
    int first_warning;
    int hit_eof;
    char message[JMSG_LENGTH_MAX];
};

static void cic_jpeg_error_exit(j_common_ptr cinfo) {
    cic_jpeg *jpeg = (cic_jpeg *)cinfo->client_data;
    (*cinfo->err->format_message)(cinfo, jpeg->message);
    longjmp(jpeg->jump, 1);
}

static void cic_jpeg_emit_message(j_common_ptr cinfo, int level) {
    if (level >= 0) {
        return;  // trace messages
    }
    cic_jpeg *jpeg = (cic_jpeg *)cinfo->client_data;
    int code = cinfo->err->msg_code;
    if (jpeg->first_warning < 0) {
        jpeg->first_warning = code;
        (*cinfo->err->format_message)(cinfo, jpeg->message);
    }
    if (code == JWRN_JPEG_EOF) {
        jpeg->hit_eof = 1;
    }
}

static void cic_jpeg_output_message(j_common_ptr cinfo) { (void)cinfo; }

cic_jpeg *cic_jpeg_create(const unsigned char *data, size_t size) {
    cic_jpeg *jpeg = calloc(1, sizeof(cic_jpeg));
    if (!jpeg) {
        return NULL;
    }
    jpeg->first_warning = -1;
    jpeg->cinfo.err = jpeg_std_error(&jpeg->err);
    jpeg->err.error_exit = cic_jpeg_error_exit;
    jpeg->err.emit_message = cic_jpeg_emit_message;
    jpeg->err.output_message = cic_jpeg_output_message;
    jpeg->cinfo.client_data = jpeg;
    if (setjmp(jpeg->jump)) {
        jpeg_destroy_decompress(&jpeg->cinfo);
        free(jpeg);
        return NULL;
    }
    jpeg_create_decompress(&jpeg->cinfo);
    jpeg_mem_src(&jpeg->cinfo, data, (unsigned long)size);
    return jpeg;
}

void cic_jpeg_destroy(cic_jpeg *jpeg) {
    if (!jpeg) {
        return;
    }
    jpeg_destroy_decompress(&jpeg->cinfo);
    free(jpeg);
}

int cic_jpeg_read_header(cic_jpeg *jpeg, int *width, int *height, int *components, int *color_space) {
    if (setjmp(jpeg->jump)) {
        return -1;
    }
    jpeg_read_header(&jpeg->cinfo, TRUE);
    *width = (int)jpeg->cinfo.image_width;
    *height = (int)jpeg->cinfo.image_height;
    *components = jpeg->cinfo.num_components;
    *color_space = (int)jpeg->cinfo.jpeg_color_space;
    return 0;
}

int cic_jpeg_start(cic_jpeg *jpeg, int out_color_space, int *output_components) {
    if (setjmp(jpeg->jump)) {
        return -1;
    }
    jpeg->cinfo.out_color_space = (J_COLOR_SPACE)out_color_space;
    jpeg_start_decompress(&jpeg->cinfo);
    *output_components = jpeg->cinfo.output_components;
    return 0;
}

int cic_jpeg_crop(cic_jpeg *jpeg, int *x, int *width) {
    if (setjmp(jpeg->jump)) {
        return -1;
    }
    JDIMENSION offset = (JDIMENSION)*x, span = (JDIMENSION)*width;
    jpeg_crop_scanline(&jpeg->cinfo, &offset, &span);
    *x = (int)offset;
    *width = (int)span;
    return 0;
}

int cic_jpeg_skip_scanlines(cic_jpeg *jpeg, int rows) {
    if (setjmp(jpeg->jump)) {
        return -1;
    }
    if (rows > 0 && jpeg_skip_scanlines(&jpeg->cinfo, (JDIMENSION)rows) != (JDIMENSION)rows) {
        strncpy(jpeg->message, "libjpeg skipped fewer scanlines than asked", sizeof(jpeg->message) - 1);
        return -1;
    }
    return 0;
}

int cic_jpeg_read_scanlines(cic_jpeg *jpeg, unsigned char *dst, size_t stride, int rows) {
    if (setjmp(jpeg->jump)) {
        return -1;
    }
    for (int i = 0; i < rows; i++) {
        JSAMPROW row = dst + (size_t)i * stride;
        if (jpeg_read_scanlines(&jpeg->cinfo, &row, 1) != 1) {
            strncpy(jpeg->message, "libjpeg returned no scanline", sizeof(jpeg->message) - 1);
            return -1;
        }
    }
    return 0;
}

int cic_jpeg_first_warning(const cic_jpeg *jpeg) { return jpeg->first_warning; }
int cic_jpeg_hit_eof(const cic_jpeg *jpeg) { return jpeg->hit_eof; }
const char *cic_jpeg_message(const cic_jpeg *jpeg) { return jpeg->message; }

// MARK: PNG

struct cic_png {
    png_structp png;
    png_infop info;
    const unsigned char *data;
    size_t size;
    size_t offset;
    char message[256];
};

static void cic_png_error(png_structp png_ptr, png_const_charp message) {
    cic_png *png = (cic_png *)png_get_error_ptr(png_ptr);
    strncpy(png->message, message ? message : "libpng error", sizeof(png->message) - 1);
    png_longjmp(png_ptr, 1);
}

static void cic_png_warning(png_structp png_ptr, png_const_charp message) {
    (void)png_ptr;
    (void)message;
}

static void cic_png_read(png_structp png_ptr, png_bytep out, size_t count) {
    cic_png *png = (cic_png *)png_get_io_ptr(png_ptr);
    if (count > png->size - png->offset) {
        png_error(png_ptr, "truncated PNG data");
    }
    memcpy(out, png->data + png->offset, count);
    png->offset += count;
}

cic_png *cic_png_create(const unsigned char *data, size_t size) {
    cic_png *png = calloc(1, sizeof(cic_png));
    if (!png) {
        return NULL;
    }
    png->data = data;
    png->size = size;
    png->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, png, cic_png_error, cic_png_warning);
    if (!png->png) {
        free(png);
        return NULL;
    }
    png->info = png_create_info_struct(png->png);
    if (!png->info) {
        png_destroy_read_struct(&png->png, NULL, NULL);
        free(png);
        return NULL;
    }
    png_set_read_fn(png->png, png, cic_png_read);
    return png;
}

void cic_png_destroy(cic_png *png) {
    if (!png) {
        return;
    }
    png_destroy_read_struct(&png->png, &png->info, NULL);
    free(png);
}

int cic_png_read_info(cic_png *png, uint32_t *width, uint32_t *height, int *bit_depth, int *color_type, int *interlace) {
    if (setjmp(png_jmpbuf(png->png))) {
        return -1;
    }
    png_read_info(png->png, png->info);
    *width = png_get_image_width(png->png, png->info);
    *height = png_get_image_height(png->png, png->info);
    *bit_depth = png_get_bit_depth(png->png, png->info);
    *color_type = png_get_color_type(png->png, png->info);
    *interlace = png_get_interlace_type(png->png, png->info);
    return 0;
}

int cic_png_palette(cic_png *png, const unsigned char **rgb, int *count) {
    png_colorp palette = NULL;
    int n = 0;
    if (setjmp(png_jmpbuf(png->png))) {
        return -1;
    }
    if (!(png_get_PLTE(png->png, png->info, &palette, &n) & PNG_INFO_PLTE)) {
        n = 0;
    }
    *rgb = (const unsigned char *)palette;
    *count = n;
    return 0;
}

int cic_png_transparency(cic_png *png, const unsigned char **alpha, int *count, uint16_t *gray, uint16_t *red, uint16_t *green, uint16_t *blue) {
    png_bytep trans = NULL;
    int n = 0;
    png_color_16p color = NULL;
    if (setjmp(png_jmpbuf(png->png))) {
        return -1;
    }
    if (!(png_get_tRNS(png->png, png->info, &trans, &n, &color) & PNG_INFO_tRNS)) {
        return 0;
    }
    *alpha = trans;
    *count = n;
    if (color) {
        *gray = color->gray;
        *red = color->red;
        *green = color->green;
        *blue = color->blue;
    }
    return 1;
}

int cic_png_read_image(cic_png *png, unsigned char *dst, size_t stride) {
    if (setjmp(png_jmpbuf(png->png))) {
        return -1;
    }
    png_uint_32 height = png_get_image_height(png->png, png->info);
    if (png_get_bit_depth(png->png, png->info) < 8) {
        png_set_packing(png->png);
    }
    int passes = png_set_interlace_handling(png->png);
    png_read_update_info(png->png, png->info);
    for (int pass = 0; pass < passes; pass++) {
        for (png_uint_32 y = 0; y < height; y++) {
            png_read_row(png->png, dst + (size_t)y * stride, NULL);
        }
    }
    return 0;
}

const char *cic_png_message(const cic_png *png) { return png->message; }
