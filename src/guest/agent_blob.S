/* The guest agent binary, embedded in msb so that the initramfs can be
 * composed at run time from one file. AGENT_PATH names the built agent. */
	.section .rodata
	.global msb_agent_blob
	.global msb_agent_blob_end
	.balign 16
msb_agent_blob:
	.incbin AGENT_PATH
msb_agent_blob_end:
	.section .note.GNU-stack,"",@progbits
