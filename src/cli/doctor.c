/* msb doctor: which accelerator msb would use and why, and whether the
 * guest assets are in place. */
#include <stdio.h>
#include <string.h>

#include "../engine/engine.h"
#include "../guest/assets.h"
#include "../runtime/accel.h"
#include "cli.h"

int cmd_doctor(int argc, char **argv)
{
	struct guest_assets assets;
	struct accel_verdict verdict;
	char engine[256];
	msb_error err;
	int problems = 0;

	if (argc > 1) {
		bool help = strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0;

		fputs("usage: msb doctor\n\nShows the accelerator msb would use and why, and checks the guest "
		      "assets.\n",
		      help ? stdout : stderr);
		return help ? 0 : CLI_EXIT_USAGE;
	}

	if (engine_qemu.describe(engine, sizeof(engine), &err) == 0) {
		printf("engine:       %s\n", engine);
	} else {
		printf("engine:       MISSING: %s\n", err.message);
		problems++;
	}

	if (assets_find(&assets, NULL, &err) < 0 || assets_prepare_initramfs(&assets, &err) < 0) {
		printf("guest assets: MISSING: %s\n", err.message);
		printf("accelerator:  unknown until the guest assets are installed (the probe boots the guest kernel)\n");
		return 1;
	}
	printf("kernel:       %s (%s)\n", assets.kernel, assets.kernel_version);
	printf("root image:   %s\n", assets.root_image);
	printf("initramfs:    %s\n", assets.initramfs);

	accel_choose(&assets, &verdict);
	printf("accelerator:  %s: %s%s\n", engine_accel_name(verdict.accel), verdict.reason,
	       verdict.cached ? " (decided earlier during this host boot)" : "");
	if (verdict.accel == ENGINE_ACCEL_TCG && verdict.tsc_khz)
		printf("host TSC:     %u kHz (passed to TCG guests)\n", verdict.tsc_khz);
	return problems ? 1 : 0;
}
