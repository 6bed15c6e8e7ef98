/**
 * What a call ended as, in one word for an expectation: the `code` it failed with (a MuxftpError's,
 * an errno's), the error as text when it has none, or 'resolved'.
 */
export async function codeOf(call: Promise<unknown>): Promise<string> {
  try {
    await call;
  } catch (error) {
    return (error as { code?: string }).code ?? String(error);
  }
  return 'resolved';
}
